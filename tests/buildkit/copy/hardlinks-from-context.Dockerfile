FROM localhost/bkbase:1
COPY hard /hard
