FROM localhost/bkbase:1
COPY a.txt b.sh /etc/
COPY conf/*.conf /tmp
COPY dir/x.* /root
