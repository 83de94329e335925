FROM localhost/bkbase:1
# bkdiff-secret: s
RUN --mount=type=secret,id=s,target=/etc/mysecret,mode=0400 stat -c '%a' /etc/mysecret > /mode
