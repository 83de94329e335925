FROM localhost/bkbase:1
ARG X=arg
ENV X=env
ARG X=arg2
RUN echo $X > /x
