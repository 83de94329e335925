FROM localhost/bkbase:1
RUN <<-"EOT"
	echo "$HOME tabs stripped" > /t
	EOT
