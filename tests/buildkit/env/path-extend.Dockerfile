FROM localhost/bkbase:1
ENV PATH=/opt/bin:$PATH
RUN echo $PATH > /path
