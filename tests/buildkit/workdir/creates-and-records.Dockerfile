FROM localhost/bkbase:1
WORKDIR /a/b/c
WORKDIR d
WORKDIR ../e
