# ENV in both forms, references to earlier values, and its effect on RUN.
FROM localhost/bbase:1
ENV A=1 B="two words" C=three\ words
ENV LEGACY the legacy form value
ENV D=${A}-${B} E=${UNSET:-fallback} A=2
RUN mkdir /env && echo "$A|$B|$C|$D|$E|$LEGACY" > /env/values
