FROM localhost/bkbase:1
# bkdiff-context: ignore
COPY . /ctx
