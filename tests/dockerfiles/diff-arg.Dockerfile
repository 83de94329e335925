# ARG: defaults, redefinition, use in RUN (not kept in the config), ARG shadowed by ENV.
FROM localhost/bbase:1
ARG ONE=1
ARG TWO
ARG THREE=${ONE}3
RUN mkdir /args && echo "$ONE|$TWO|$THREE" > /args/a
ARG ONE=one
ENV THREE=env-wins
RUN echo "$ONE|$THREE" > /args/b
