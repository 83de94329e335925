FROM localhost/bkbase:1
COPY dir /copied
COPY dir/ /copied-slash/
