build/obj/providers/aws_creds.o: ../../providers/aws_creds.c \
  ../../providers/aws_creds.h ../../providers/secret.h \
  ../../providers/conf.h

../../providers/aws_creds.h:

../../providers/secret.h:

../../providers/conf.h:
