FROM localhost/bkbase:1
RUN echo one \
    two \
  # a comment inside
    three > /cont
