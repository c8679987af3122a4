"""HTTP routers, one per audience: federation (public), departments, residents, admins."""
