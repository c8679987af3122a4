"""Scripts of the project; scripts/house.py is also imported by the tests."""
