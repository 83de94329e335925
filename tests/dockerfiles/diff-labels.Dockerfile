# LABEL (several, quoted, multi-line, overriding) and MAINTAINER.
FROM localhost/bbase:1
ARG V=1.2
LABEL a=1 "b c"="two words" \
      version=$V
LABEL a=overridden empty=""
MAINTAINER Jane Doe <jane@example.com>
