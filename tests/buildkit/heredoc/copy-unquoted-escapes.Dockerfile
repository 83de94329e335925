FROM localhost/bkbase:1
ARG name=world
COPY <<EOF <<-"RAW" /out/
\$name \\ a\b "double $name" 'single ${name}' \
exec "$@" $1 ${1:-one}
EOF
	\$name \\ "$@"
	RAW
