FROM localhost/bkbase:1
ARG name=world
ENV GREETING=Hello
COPY <<EOF /vars
$GREETING ${name}! ${UNSET:-fallback} ${name:+set} ${name#wor} [$UNSET] $HOME
EOF
