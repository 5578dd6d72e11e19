"""laifaxin_sync."""
