FROM localhost/bkbase:1
RUN rm /etc/group && rm -r /root
