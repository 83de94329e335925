FROM localhost/bkbase:1
RUN <<EOF
echo one > /one
echo two > /two
EOF
