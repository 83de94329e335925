FROM localhost/bkbase:1
ARG P=path/to/file.tar.gz
ENV H1=${P#*/} H2=${P##*/} H3=${P%.*} H4=${P%%.*}
