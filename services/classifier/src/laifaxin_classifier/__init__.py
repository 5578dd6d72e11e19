"""laifaxin_classifier."""
