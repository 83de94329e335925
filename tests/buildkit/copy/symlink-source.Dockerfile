FROM localhost/bkbase:1
COPY dir/link /followed
COPY dir /keeps-links
