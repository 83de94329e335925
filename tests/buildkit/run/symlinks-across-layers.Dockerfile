FROM localhost/bkbase:1
RUN mkdir /real && echo r > /real/f && ln -s real /sl && ln -s /real/f /abs
RUN rm /sl && ln -s /etc /sl && ln -s dangling /dangle
