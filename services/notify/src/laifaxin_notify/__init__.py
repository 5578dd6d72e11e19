"""laifaxin_notify."""
