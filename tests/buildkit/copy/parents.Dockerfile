FROM localhost/bkbase:1
COPY --parents dir/sub/y.txt /p/
