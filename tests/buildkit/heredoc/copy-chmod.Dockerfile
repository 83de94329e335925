FROM localhost/bkbase:1
COPY --chmod=755 <<"EOF" /out/script
#!/bin/sh
echo $1
EOF
