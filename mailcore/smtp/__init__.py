"""The SMTP servers on aiosmtpd: receiving for hosted domains (RFC 5321), submission (RFC 6409)."""
