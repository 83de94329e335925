FROM localhost/bkbase:1
COPY --exclude=*.txt conf /conf-no-txt
