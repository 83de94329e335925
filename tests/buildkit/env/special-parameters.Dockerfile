FROM localhost/bkbase:1
# Special and positional parameters are never set in a Dockerfile word:
# each expands as an unset name would (strata used to refuse `$1` and
# keep `$@` as written). Names may hold non-ASCII letters.
ENV A="[$@]" B="[$1$22x]" C="[$$]" E="[$#$?$!$-$*]"
ENV D="[${1}${@}][${1:-one}]"
ENV G="[$héllo]x"
LABEL a="$@" b="x$1"
WORKDIR /w$1
