FROM localhost/bkbase:1
COPY --link a.txt /linked
