FROM localhost/bkbase:1
ARG P=a-b-c-b
ENV S1=${P/b/X} S2=${P//b/X}
