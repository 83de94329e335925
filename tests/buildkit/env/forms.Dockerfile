FROM localhost/bkbase:1
ENV A=1 B="two words" C=3
ENV D four five
ENV E=$A-${B}
