FROM localhost/bkbase:1
ARG K=FOO
ENV $K=1 ${K}_B=two
ENV "${K}_C"="three words"
LABEL $K=v "lbl.${K}"=w
