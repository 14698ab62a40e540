"""The rekognition backend: Amazon Rekognition (or ``facetrail serve``) through boto3.

``backend`` holds the Backend class and the error translation, ``images`` prepares images as the
service takes them, ``ids`` maps identifiers into its patterns.
"""
