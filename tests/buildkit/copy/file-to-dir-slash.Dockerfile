FROM localhost/bkbase:1
COPY a.txt /made/dir/
