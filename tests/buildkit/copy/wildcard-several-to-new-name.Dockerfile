FROM localhost/bkbase:1
COPY conf/*.conf /newpath
