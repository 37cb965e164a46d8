build/obj/providers/eventbridge.o: ../../providers/eventbridge.c \
  ../../providers/aws_creds.h ../../providers/buf.h \
  ../../providers/json.h ../../providers/provider.h \
  ../../providers/conf.h ../../providers/http.h

../../providers/aws_creds.h:

../../providers/buf.h:

../../providers/json.h:

../../providers/provider.h:

../../providers/conf.h:

../../providers/http.h:
