FROM localhost/bkbase:1
COPY exec /exec
