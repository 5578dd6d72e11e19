"""laifaxin_binding."""
