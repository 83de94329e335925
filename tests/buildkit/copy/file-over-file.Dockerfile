FROM localhost/bkbase:1
COPY a.txt /etc/passwd
