FROM localhost/bkbase:1
HEALTHCHECK --interval=5m --timeout=3s --start-period=10s --retries=3 CMD wget -q localhost || exit 1
