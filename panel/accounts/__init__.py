"""Panel accounts: what django-allauth does not: staff-only pages and staff 2FA enforcement."""
