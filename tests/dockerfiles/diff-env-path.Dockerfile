# ENV PATH extending the default PATH of an image built from scratch.
FROM localhost/bbase:1
ENV PATH=/opt/bin:$PATH
RUN echo "$PATH" > /path
