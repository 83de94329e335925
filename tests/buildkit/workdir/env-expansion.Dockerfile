FROM localhost/bkbase:1
ENV DIR=/srv/app
WORKDIR $DIR/sub
