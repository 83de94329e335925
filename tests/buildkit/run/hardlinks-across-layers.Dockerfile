FROM localhost/bkbase:1
RUN echo data > /h1
RUN ln /h1 /h2 && ln /h1 /h3
RUN rm /h1
