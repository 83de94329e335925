FROM localhost/bkbase:1
COPY <<EOF /h/config.ini
[main]
key = value
EOF
