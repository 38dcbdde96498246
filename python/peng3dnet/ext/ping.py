"""The ping extension (being rebuilt; see the issue tracker)."""
