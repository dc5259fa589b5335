# Apify's Python base image; it runs as the unprivileged user "myuser".
FROM apify/actor-python:3.11

USER myuser

# Dependencies first, so source changes don't invalidate this layer.
COPY --chown=myuser:myuser requirements.txt ./

RUN echo "Python version:" \
 && python --version \
 && echo "Pip version:" \
 && pip --version \
 && echo "Installing dependencies:" \
 && pip install --no-cache-dir -r requirements.txt \
 && echo "All installed Python packages:" \
 && pip freeze

COPY --chown=myuser:myuser . ./

# Fail the build early on a syntax error.
RUN python3 -m compileall -q src/

CMD ["python3", "-m", "src"]
