"""Temporary re-export: the MIME parser now lives in :mod:`laifaxin_shared.mime` (sync and the classifier
share it). Import from there; this module goes once sync's modules do."""

from laifaxin_shared.mime import QuarantineError, parse_message

__all__ = ["QuarantineError", "parse_message"]
