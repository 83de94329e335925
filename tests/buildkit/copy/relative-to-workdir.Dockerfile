FROM localhost/bkbase:1
WORKDIR /w/deep
COPY a.txt rel.txt
COPY b.sh ./
COPY dir ../up/
