"""Team payments: authorises and refunds payments."""
