FROM localhost/bkbase:1
COPY a.txt b.sh /several/
