# escape=`
FROM localhost/bkbase:1
RUN echo back`
  tick > /tick
ENV P=C:\\path
