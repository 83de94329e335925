FROM localhost/bkbase:1
ARG name=world
RUN <<EOF
echo "$name ${name:-x} \$name" > /single
EOF
RUN cat <<EOF > /complex
$name \$name '$name' \\
EOF
