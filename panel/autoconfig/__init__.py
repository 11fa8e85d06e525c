"""Automatic mail client configuration: Thunderbird autoconfig and Outlook autodiscover."""
