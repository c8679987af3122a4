"""Services own the business rules and the transactions; routes only call them."""
