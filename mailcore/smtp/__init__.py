"""The SMTP server (RFC 5321) on aiosmtpd: receiving mail for hosted domains."""
